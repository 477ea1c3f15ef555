"""The operator's tool, `utfall-admin`: it talks to Kafka (the registry, keys and command topics, the cluster's
principals and ACLs) and reads only the services' published views, never their tables."""
