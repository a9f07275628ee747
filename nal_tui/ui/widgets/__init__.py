"""Dashboard widgets, one module per panel; each only renders state it is handed."""
