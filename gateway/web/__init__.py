"""The web layer: blueprints that parse a request, call the domain and render the answer."""
