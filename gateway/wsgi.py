"""The WSGI entry point for production servers: `gunicorn gateway.wsgi:app`."""

from gateway import logs
from gateway.app import create_app

logs.setup()
app = create_app(background=True)
