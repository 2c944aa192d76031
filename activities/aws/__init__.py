"""AWS step types, one module per service, on real boto3 clients (one per service and region)."""
