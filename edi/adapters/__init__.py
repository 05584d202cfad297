"""Front-end helpers that touch the outside world: files, logs, databases, sockets."""
