"""Reports: daily parity, CRM attribution, incidents, the anomaly report, the Monday checklist and the
/metrics figures, with their screens and beat tasks."""
