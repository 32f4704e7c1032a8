FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN SECRET_KEY=collectstatic python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["gunicorn", "papertrade.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4"]
