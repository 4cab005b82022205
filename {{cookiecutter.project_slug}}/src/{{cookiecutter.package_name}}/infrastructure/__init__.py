"""What the service uses to talk to the outside world: configuration and the database."""
