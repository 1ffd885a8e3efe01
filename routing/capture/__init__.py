"""The capture edge: versioned capture schemas and the posts intake refused (inbound dead letters)."""
