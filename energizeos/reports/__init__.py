"""Reports: daily and monthly performance, savings and availability figures from the records."""
