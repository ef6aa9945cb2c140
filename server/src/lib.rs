//! hms-server (placeholder)
