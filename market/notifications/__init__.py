"""In-app notifications (the bell in the header), mailed too when a mail server is configured."""
