//! cloudvip-sim: placeholder, being written.
