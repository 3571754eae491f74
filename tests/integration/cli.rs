//! The admin CLI (`invite`, `credentials`, `sessions`) run as a real process.
