#!/bin/sh
# Copy the built front-end assets that the templates use from node_modules into static/vendor;
# scripts/build_assets.py then fingerprints and compresses them into static/dist (icons come from
# node_modules/bootstrap-icons/icons as an SVG sprite, not as a font).
set -eu
dest=static/vendor
rm -rf "$dest"
mkdir -p "$dest/bootstrap" "$dest/echarts"
cp node_modules/bootstrap/dist/css/bootstrap.min.css "$dest/bootstrap/"
cp node_modules/bootstrap/dist/js/bootstrap.bundle.min.js "$dest/bootstrap/"
cp node_modules/echarts/dist/echarts.min.js "$dest/echarts/"
