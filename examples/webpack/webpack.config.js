// An ordinary webpack 5 setup: nothing here concerns hms-client. Its .wasm is found
// through `new URL(..., import.meta.url)`, which webpack 5 emits as an asset by itself:
// no `experiments.asyncWebAssembly`, no loader.
const path = require("node:path");
const HtmlWebpackPlugin = require("html-webpack-plugin");

module.exports = {
  entry: "./src/index.js",
  output: { path: path.resolve(__dirname, "dist"), clean: true },
  plugins: [new HtmlWebpackPlugin({ template: "./src/index.html" })],
};
