"""The analyst dashboard (a Streamlit app, run as a script: `abplatform dashboard`), shipped inside
the package as abplatform.dashboards; abplatform.resources.dashboard_app() is its app.py."""
