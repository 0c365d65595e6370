#!/usr/bin/env bash
# Back up the hotline's Redis: a fresh, consistent snapshot into DEST/<time>/dump.rdb, and the
# recorded prompts beside it (DEST/<time>/prompts) when HOTLINE_DATA_DIR/prompts is on this host.
# Usage: deploy/backup.sh DEST
#   Reads REDIS_URL (redis://[user]:PASSWORD@HOST:PORT/DB, as in /etc/hotline/hotline.env);
#   REDIS_BACKUP_URL wins if set (e.g. the master's address when REDIS_URL is a sentinel URL).
#   Backups older than KEEP_DAYS (default 14) are removed.
#
# `redis-cli --rdb` has Redis write a snapshot and stream it here, as a replica's first sync
# does: it works from any host that can reach Redis, needs no access to Redis' own files, and
# is taken at one instant (copying dump.rdb or the append-only files from under a running
# server is not). restore.sh turns it back into a durable Redis.
set -euo pipefail
umask 077
dest=${1:?usage: backup.sh DEST}
url=${REDIS_BACKUP_URL:-${REDIS_URL:-redis://127.0.0.1:6379/0}}
keep_days=${KEEP_DAYS:-14}

case $url in
  redis://*) ;;
  *) echo "backup.sh: needs a redis://host:port URL, not ${url%%://*}:// (set REDIS_BACKUP_URL)" >&2
     exit 2 ;;
esac
rest=${url#redis://}
args=()
if [[ $rest == *@* ]]; then
  userinfo=${rest%@*}
  rest=${rest##*@}
  if [[ $userinfo == *:* ]]; then
    user=${userinfo%%:*}
    password=${userinfo#*:}
  else
    user=""
    password=$userinfo
  fi
  # The password goes through the environment, not the command line that `ps` shows;
  # %XX escapes in the URL are decoded as redis-py decodes them.
  REDISCLI_AUTH=$(printf '%b' "${password//%/\\x}")
  export REDISCLI_AUTH
  [ -n "$user" ] && args+=(--user "$user")
fi
hostport=${rest%%/*}
hostport=${hostport%%\?*}
if [[ $hostport == \[* ]]; then        # [::1]:6379
  host=${hostport%%]*}; host=${host#[}
  port=${hostport##*]}; port=${port#:}
else
  host=${hostport%%:*}
  port=${hostport#"$host"}; port=${port#:}
fi
args+=(-h "${host:-127.0.0.1}" -p "${port:-6379}")

stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial="$dest/.partial-$stamp"
mkdir -p "$partial"
redis-cli "${args[@]}" --rdb "$partial/dump.rdb" >/dev/null
# A snapshot starts with the "REDIS" magic; anything else (an error text, nothing) is no backup.
if [ "$(head -c 5 "$partial/dump.rdb")" != "REDIS" ]; then
  echo "backup.sh: $partial/dump.rdb is not a Redis snapshot" >&2
  exit 1
fi
# The recorded prompts (HOTLINE_DATA_DIR/prompts: villages' own voices) go with the snapshot
# when this host keeps them; put them back by copying DEST/<time>/prompts into the data folder.
prompts_dir=${HOTLINE_DATA_DIR:-/var/lib/hotline}/prompts
if [ -d "$prompts_dir" ]; then
  cp -a "$prompts_dir" "$partial/prompts"
fi
# Only a complete backup gets a name restore.sh would be pointed at.
mv "$partial" "$dest/$stamp"
find "$dest" -mindepth 1 -maxdepth 1 -type d -name '20*' -mtime +"$keep_days" -exec rm -rf {} +
find "$dest" -mindepth 1 -maxdepth 1 -type d -name '.partial-*' -mmin +60 -exec rm -rf {} +
echo "backed up to $dest/$stamp"
