// hls.js ships its light build (no subtitles, alternate audio, DRM: none of which live streams here
// use) without its own declaration; it has the full build's API.
declare module "hls.js/light" {
  export * from "hls.js";
  export { default } from "hls.js";
}
