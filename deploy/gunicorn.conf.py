"""gunicorn settings for the hotline web app: `gunicorn -c deploy/gunicorn.conf.py gateway.wsgi:app`."""

import multiprocessing
import os

bind = os.environ.get("HOTLINE_BIND", "127.0.0.1:8000")
# Webhooks are short and mostly wait on Redis: threads serve them well without many processes.
workers = int(os.environ.get("HOTLINE_WEB_PROCESSES", max(2, multiprocessing.cpu_count())))
threads = int(os.environ.get("HOTLINE_WEB_THREADS", 8))
worker_class = "gthread"
# Twilio waits 15 s for a webhook; a process stuck twice that long is killed and replaced.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle processes now and then (jitter: not all at once), in case anything grows.
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
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
