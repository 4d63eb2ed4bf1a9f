"""Ray Serve deployments composed into one graph behind the HTTP API."""
