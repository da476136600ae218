"""The dashboard's pages, run by Streamlit as scripts (st.Page paths in ../app.py)."""
