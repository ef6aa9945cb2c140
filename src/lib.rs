//! hms-client: the browser SDK (placeholder until the SDK issue lands).
