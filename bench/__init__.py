"""`make bench`: latency, capacity, memory and CPU of the receptionist under gunicorn, written to BENCHMARKS.md."""
