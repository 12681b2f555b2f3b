"""The CS dashboards (the Streamlit app in dashboards/): reading the marts, and the words pages show."""
