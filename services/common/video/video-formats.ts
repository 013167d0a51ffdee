// The video formats Cutline reads and writes, in one table: containers with their content types,
// and the output formats with their names, extensions and labels. Browser-safe (it imports only
// generated enums): the gateway, inference, the CLI and the web app all read it from here.
import { VideoFormat } from "../gen/cutline/inference/v1/video_options_pb.ts";

/** The containers accepted as input and written as output. */
export type VideoContainer = "mp4" | "mov" | "webm";

/** Each container's content type (uploads stored, results served). */
export const VIDEO_CONTAINER_CONTENT_TYPES: Readonly<Record<VideoContainer, string>> = { mp4: "video/mp4", mov: "video/quicktime", webm: "video/webm" };

/** What a file picker offers for a video upload (an `accept` attribute). */
export const VIDEO_UPLOAD_ACCEPT = Object.values(VIDEO_CONTAINER_CONTENT_TYPES).join(",");

export type VideoFormatName = "webm" | "mov" | "mp4" | "mask";

/** One output format: its name in the API (`format=`), its enum, container, extension and a label for people. */
export interface VideoOutput {
  name: VideoFormatName;
  format: Exclude<VideoFormat, VideoFormat.UNSPECIFIED>;
  container: VideoContainer;
  contentType: string;
  extension: string;
  label: string;
}

function output(name: VideoFormatName, format: VideoOutput["format"], container: VideoContainer, label: string): VideoOutput {
  return { name, format, container, contentType: VIDEO_CONTAINER_CONTENT_TYPES[container], extension: container, label };
}

/** The output formats, the default (WebM) first. */
export const VIDEO_OUTPUTS: readonly VideoOutput[] = [
  output("webm", VideoFormat.WEBM, "webm", "WebM (VP9 with alpha)"),
  output("mov", VideoFormat.MOV, "mov", "MOV (ProRes 4444 with alpha)"),
  output("mp4", VideoFormat.MP4, "mp4", "MP4 on a colour"),
  output("mask", VideoFormat.MASK, "mp4", "Mask video (MP4)"),
];

/** The output of `format`; unspecified (and anything unknown) is WebM, the default. */
export function videoOutputOf(format: VideoFormat): VideoOutput {
  return VIDEO_OUTPUTS.find((candidate) => candidate.format === format) ?? VIDEO_OUTPUTS[0]!;
}

/** The output a name (`format=webm`, case-insensitive) stands for; undefined for any other name. */
export function videoOutputNamed(name: string): VideoOutput | undefined {
  const lower = name.toLowerCase();
  return VIDEO_OUTPUTS.find((candidate) => candidate.name === lower);
}

/** The file extension for a video content type ("video/quicktime" → "mov"); undefined for other types. */
export function videoExtensionOf(contentType: string): string | undefined {
  const bare = contentType.split(";")[0]!.trim().toLowerCase();
  return (Object.keys(VIDEO_CONTAINER_CONTENT_TYPES) as VideoContainer[]).find((container) => VIDEO_CONTAINER_CONTENT_TYPES[container] === bare);
}
