"""The daily digest: its scorecard, schedule, job, charts and HTML page."""
