"""Monitoring gateway: authenticated log queries, summaries, health and alert webhooks over Loki."""
