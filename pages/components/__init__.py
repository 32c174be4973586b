"""Custom Streamlit elements used by the pages (screen code, like the pages themselves)."""
