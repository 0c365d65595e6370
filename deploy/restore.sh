#!/usr/bin/env bash
# Restore a backup made by backup.sh: stops the hotline and Redis, loads the snapshot, starts.
# Usage: deploy/restore.sh BACKUP_DIR     (as root, on the Redis host)
#   REDIS_CONF defaults to /etc/redis/redis.conf (its `dir` and `requirepass` are used),
#   REDIS_USER to redis. Recorded prompts in the backup (BACKUP_DIR/prompts, what villages
#   recorded) go back into HOTLINE_DATA_DIR (default /var/lib/hotline)/prompts, owned by
#   HOTLINE_USER (default hotline, when it exists); the ones there before are kept aside.
#
# With `appendonly yes` Redis starts from its append-only file and ignores dump.rdb, so putting
# the snapshot back is not enough. This script starts Redis once by hand with the append-only
# file off, so that it loads the snapshot, then turns the append-only file on, which writes it
# afresh from the loaded data, and stops; then the services start as usual.
set -euo pipefail
src=${1:?usage: restore.sh BACKUP_DIR}
conf=${REDIS_CONF:-/etc/redis/redis.conf}
redis_user=${REDIS_USER:-redis}
redis_dir=$(awk '$1 == "dir" { print $2 }' "$conf" | tail -n 1)
redis_dir=${redis_dir:-/var/lib/redis}
password=$(awk '$1 == "requirepass" { print $2 }' "$conf" | tail -n 1)
[ -f "$src/dump.rdb" ] || { echo "restore.sh: no dump.rdb in $src" >&2; exit 2; }
# Check the snapshot before anything is stopped (redis-check-rdb comes with redis-tools).
redis-check-rdb "$src/dump.rdb" >/dev/null || { echo "restore.sh: $src/dump.rdb is damaged" >&2; exit 1; }

as_redis() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$redis_user" -- "$@"; else "$@"; fi
}

systemctl stop hotline-web hotline-workers.target
systemctl stop redis-server

aside="$redis_dir/before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$redis_dir" "$aside"
for old in "$redis_dir"/dump.rdb "$redis_dir"/appendonly*; do
  if [ -e "$old" ]; then mv "$old" "$aside/"; fi
done
cp "$src/dump.rdb" "$redis_dir/dump.rdb"
if [ "$(id -u)" = 0 ]; then chown -R "$redis_user:$redis_user" "$redis_dir"; fi

# Load the snapshot with the append-only file off, on a socket of its own (no TCP port).
sock="$redis_dir/restore.sock"
as_redis redis-server "$conf" --appendonly no --port 0 \
  --unixsocket "$sock" --unixsocketperm 700 --daemonize no --pidfile "" --logfile "" &
loader=$!
# If anything below fails, do not leave this Redis running beside the real one's data.
trap 'kill "$loader" 2>/dev/null || true' EXIT
cli_auth() { REDISCLI_AUTH="$password" redis-cli -s "$sock" --no-auth-warning "$@"; }
for _ in $(seq 600); do
  [ "$(cli_auth PING 2>/dev/null)" = PONG ] && break
  kill -0 "$loader" 2>/dev/null || { echo "restore.sh: redis-server did not start" >&2; exit 1; }
  sleep 0.1
done
cli_auth CONFIG SET appendonly yes >/dev/null
# Wait until the new append-only file is written (Redis refuses to stop before that anyway).
for _ in $(seq 6000); do
  info=$(cli_auth INFO persistence | tr -d '\r')
  if grep -q '^aof_rewrite_in_progress:0' <<<"$info" && grep -q '^aof_rewrite_scheduled:0' <<<"$info"; then
    break
  fi
  sleep 0.1
done
grep -q '^aof_last_bgrewrite_status:ok' <<<"$info" || { echo "restore.sh: writing the append-only file failed" >&2; exit 1; }
keys=$(cli_auth DBSIZE)
cli_auth SHUTDOWN >/dev/null 2>&1 || true
wait "$loader" || true

prompts_note=""
if [ -d "$src/prompts" ]; then
  data_dir=${HOTLINE_DATA_DIR:-/var/lib/hotline}
  mkdir -p "$data_dir"
  if [ -e "$data_dir/prompts" ]; then
    mv "$data_dir/prompts" "$data_dir/prompts.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
  fi
  cp -a "$src/prompts" "$data_dir/prompts"
  hotline_user=${HOTLINE_USER:-hotline}
  if [ "$(id -u)" = 0 ] && id "$hotline_user" >/dev/null 2>&1; then
    chown -R "$hotline_user:$hotline_user" "$data_dir/prompts"
  fi
  prompts_note=" and the recorded prompts into $data_dir/prompts"
fi

systemctl start redis-server
systemctl start hotline-web hotline-workers.target
echo "restored $keys keys$prompts_note from $src (the previous files are in $aside)"
