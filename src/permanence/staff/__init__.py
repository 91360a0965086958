"""Staff and client users: authentication, roles, training and confidentiality."""
