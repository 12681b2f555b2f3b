"""The Salesforce sandbox: a local HTTPS org that simple-salesforce and Airflow's SalesforceHook use unchanged."""
