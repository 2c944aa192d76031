"""The local sandbox: two simulated regions on real servers over real sockets.

Components (each a process on 127.0.0.1): a Temporal dev server, an AWS server (moto plus the
gaps this package fills), and per region a Kubernetes API stand-in and a small "shop" app.
"""
