"""RabbitMQ: topology, event consumer, RPC server, notification relay."""
