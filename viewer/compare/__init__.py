"""Two models side by side: per-query AP of each, the queries each wins, both ranks on every tile."""
