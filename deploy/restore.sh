#!/usr/bin/env bash
# Restore a backup made by backup.sh: stops the hotline and Redis, puts the files back, starts.
# Usage: deploy/restore.sh BACKUP_DIR   (as root; REDIS_DIR defaults to /var/lib/redis)
set -euo pipefail
src=${1:?usage: restore.sh BACKUP_DIR}
redis_dir=${REDIS_DIR:-/var/lib/redis}
systemctl stop hotline-web hotline-workers.target
systemctl stop redis-server
mkdir -p "$redis_dir/before-restore"
mv "$redis_dir"/dump.rdb "$redis_dir"/appendonly* "$redis_dir/before-restore/" 2>/dev/null || true
cp -a "$src"/* "$redis_dir"/
chown -R redis:redis "$redis_dir"
systemctl start redis-server
systemctl start hotline-web hotline-workers.target
echo "restored from $src (the previous files are in $redis_dir/before-restore)"
