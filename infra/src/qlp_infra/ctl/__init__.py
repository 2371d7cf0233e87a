"""``qlpctl``: the operator CLI for a QLP platform, local (``make up``) or on Kubernetes."""
