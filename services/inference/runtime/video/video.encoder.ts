// How each output format is encoded: the raw frames ffmpeg reads from the pipe, and its codecs.
import { VideoFormat, type VideoOptions } from "../../../common/gen/cutline/inference/v1/video_options_pb.ts";
import { videoOutputOf, type VideoContainer } from "../../../common/video/video-formats.ts";

export interface VideoOutputFormat {
  /** ffmpeg's muxer (the output's container): the output path needs no extension. */
  muxer: VideoContainer;
  /** Raw pixels the pipeline writes for each frame. */
  pixelFormat: "rgba" | "rgb24" | "gray";
  contentType: string;
  videoArgs: string[];
  /** Codec of the kept audio track; undefined: the format carries none. */
  audioArgs: string[] | undefined;
}

type Encoding = Omit<VideoOutputFormat, "muxer" | "contentType">;

/** The codecs of each format; its container and content type come from the shared table (video-formats.ts). */
const encodings: Record<Exclude<VideoFormat, VideoFormat.UNSPECIFIED>, Encoding> = {
  // VP9 keeps the alpha plane (yuva420p) in WebM's BlockAdditional; realtime speed 8, tiles and
  // threads (ffmpeg gives libvpx one thread unless told), as the encoder otherwise becomes the
  // pipeline's slowest stage (bench:video measured 4.2 fps at 720p without them, on a loaded 2-core machine).
  [VideoFormat.WEBM]: {
    pixelFormat: "rgba",
    videoArgs: ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-tile-columns", "2", "-threads", "4", "-crf", "30", "-b:v", "0", "-auto-alt-ref", "0"],
    audioArgs: ["-c:a", "libopus", "-b:a", "128k"],
  },
  [VideoFormat.MOV]: {
    pixelFormat: "rgba",
    videoArgs: ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-vendor", "apl0", "-movflags", "+faststart"],
    audioArgs: ["-c:a", "aac", "-b:a", "192k"],
  },
  [VideoFormat.MP4]: {
    pixelFormat: "rgb24",
    videoArgs: ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    audioArgs: ["-c:a", "aac", "-b:a", "192k"],
  },
  [VideoFormat.MASK]: {
    pixelFormat: "gray",
    videoArgs: ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    audioArgs: undefined,
  },
};

/** The format asked for; unspecified is WebM. */
export function videoEncodingOf(options: VideoOptions): VideoOutputFormat {
  const output = videoOutputOf(options.format);
  return { ...encodings[output.format], muxer: output.container, contentType: output.contentType };
}

export const bytesPerPixel = { rgba: 4, rgb24: 3, gray: 1 } as const;

/** ffmpeg's arguments: raw frames on stdin at `rate`, the input's first audio track where kept, the output file. */
export function encoderArgs(input: {
  format: VideoOutputFormat;
  width: number;
  height: number;
  rate: string;
  audioFrom: string | undefined;
  /** The audio read from `audioFrom` stops here (seconds): the duration the job was billed for. */
  audioSecondsMax: number;
  outputPath: string;
}): string[] {
  const { format, width, height, rate, audioFrom, audioSecondsMax, outputPath } = input;
  const audio = audioFrom !== undefined && format.audioArgs !== undefined;
  return [
    "-f", "rawvideo", "-pix_fmt", format.pixelFormat, "-s", `${width}x${height}`, "-framerate", rate, "-i", "pipe:0",
    ...(audio ? ["-t", String(audioSecondsMax), "-i", audioFrom, "-map", "0:v:0", "-map", "1:a:0", ...format.audioArgs!] : ["-map", "0:v:0", "-an"]),
    ...format.videoArgs,
    "-f", format.muxer, "-y", outputPath,
  ];
}
