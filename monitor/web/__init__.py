"""The reviewers' web page: static HTML/CSS/JS served by the daemon's HTTP server."""
