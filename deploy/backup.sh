#!/usr/bin/env bash
# Back up the hotline's Redis: a fresh snapshot plus the append-only files, into DEST/<time>/.
# Usage: deploy/backup.sh DEST   (reads REDIS_URL; REDIS_DIR defaults to /var/lib/redis)
set -euo pipefail
dest=${1:?usage: backup.sh DEST}
redis_dir=${REDIS_DIR:-/var/lib/redis}
url=${REDIS_URL:-redis://127.0.0.1:6379/0}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dest/$stamp"
before=$(redis-cli -u "$url" LASTSAVE)
redis-cli -u "$url" BGSAVE >/dev/null
# Wait for the snapshot to finish (LASTSAVE moves on), at most two minutes.
for _ in $(seq 120); do
  [ "$(redis-cli -u "$url" LASTSAVE)" != "$before" ] && break
  sleep 1
done
cp -a "$redis_dir"/dump.rdb "$dest/$stamp/" 2>/dev/null || true
cp -a "$redis_dir"/appendonly* "$dest/$stamp/" 2>/dev/null || true
find "$dest" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} +
echo "backed up to $dest/$stamp"
