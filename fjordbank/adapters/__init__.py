"""Adapters: the only code that talks to NATS, Firestore, Pub/Sub and FCM."""
