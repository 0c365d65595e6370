"""gunicorn settings for the hotline web app: `gunicorn -c deploy/gunicorn.conf.py gateway.wsgi:app`."""

import multiprocessing
import os

bind = os.environ.get("HOTLINE_BIND", "127.0.0.1:8000")
# Sync workers, as gunicorn advises behind a buffering proxy: nginx reads each request whole
# before passing it on (no slow client ever holds a process), and opens a new connection for
# each one. Measured that way on 2 cores (make bench, WRK_CLOSE), 5 sync processes served the
# webhooks about 15% faster than 2 processes x 8 threads, with a lower p99: a webhook is
# mostly Python, and threads in one process take turns on its lock. A process rendering a
# notice's PDF or sound for the dashboard (1-2 s) leaves the others answering.
workers = int(os.environ.get("HOTLINE_WEB_PROCESSES", 2 * multiprocessing.cpu_count() + 1))
worker_class = "sync"
# Twilio waits 15 s for a webhook; a process stuck twice that long is killed and replaced.
timeout = 30
graceful_timeout = 20
# Recycle processes now and then (jitter: not all at once), in case anything grows.
max_requests = int(os.environ.get("HOTLINE_WEB_MAX_REQUESTS", 5000))  # 0: never (make bench)
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("HOTLINE_ACCESS_LOG", "-") or None  # empty: none (make bench)
errorlog = "-"
# Query strings of Twilio callbacks may carry numbers: log the path only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("HOTLINE_FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 25+ opens a control socket under $HOME by default: read-only under systemd's
# ProtectSystem=strict, shared between containers on one volume, and not needed here.
control_socket_disable = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask": {"()": "gateway.logs.MaskNumbers"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask"]},
    },
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
