"""The observability dashboard: daily rollups kept by a beat task, read by one console page."""
