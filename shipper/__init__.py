"""Log shipper: pulls GCS objects, Firestore documents and pod logs and pushes them to Loki."""
