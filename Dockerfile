FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/base.txt
COPY . .
RUN mkdir -p var && DEBUG=true python manage.py collectstatic --noinput -v 0
EXPOSE 8000
# The production command (README, "Serving"): WEB_CONCURRENCY workers (default: the
# CPUs nproc reports) under uvicorn's supervisor (agenticpal.workers: each worker on a
# SO_REUSEPORT socket of its own), which gets `docker stop`'s SIGTERM (exec: it is PID 1)
# and lets every worker finish the replies it is writing.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python -m agenticpal.workers --host 0.0.0.0 --port 8000 --workers \"${WEB_CONCURRENCY:-$(nproc)}\""]
