"""Gunicorn settings, as deployed (the Procfile and `make run` use this file).

One worker process, many threads: call state lives in that process's memory, so a second
worker would not see the calls the first one holds. Threads keep webhook acknowledgements
fast while replies are computed in the background.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
# No control socket: it lives at one fixed path per user, which clashes when several instances run.
control_socket_disable = True
