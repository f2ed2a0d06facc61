//! The xarray (and IDR) walk.
