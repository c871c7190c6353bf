import { createHash } from 'node:crypto';
import { PNG } from 'pngjs';

/** What to draw: the prompt and seed pick every colour and shape, the dimensions are exact. */
export interface PromptPicture {
  prompt: string;
  seed: number;
  width: number;
  height: number;
}

type Rgb = readonly [number, number, number];

interface Disc {
  centreX: number;
  centreY: number;
  radius: number;
  colour: Rgb;
}

const DISC_COUNT = 4;

function rgbAt(digest: Buffer, offset: number): Rgb {
  return [digest[offset] ?? 0, digest[offset + 1] ?? 0, digest[offset + 2] ?? 0];
}

/** Digest bytes 6–17 place the discs (centre, radius 10–40% of the short side); bytes 18–29 colour them. */
function discsFrom(digest: Buffer, width: number, height: number): Disc[] {
  const shortSide = Math.min(width, height);
  return Array.from({ length: DISC_COUNT }, (_, index) => {
    const offset = 6 + index * 3;
    const byte = (at: number): number => (digest[offset + at] ?? 0) / 255;
    return {
      centreX: byte(0) * width,
      centreY: byte(1) * height,
      radius: (0.1 + 0.3 * byte(2)) * shortSide,
      colour: rgbAt(digest, 18 + index * 3),
    };
  });
}

/** The topmost disc covering the pixel wins, so later discs overlap earlier ones. */
function discColourAt(discs: readonly Disc[], x: number, y: number): Rgb | undefined {
  for (let index = discs.length - 1; index >= 0; index--) {
    const disc = discs[index];
    if (disc === undefined) continue;
    const dx = x - disc.centreX;
    const dy = y - disc.centreY;
    if (dx * dx + dy * dy <= disc.radius * disc.radius) return disc.colour;
  }
  return undefined;
}

function paint(png: PNG, digest: Buffer): void {
  const { width, height, data } = png;
  const from = rgbAt(digest, 0);
  const to = rgbAt(digest, 3);
  const discs = discsFrom(digest, width, height);
  const span = Math.max(1, width + height - 2);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x + y) / span;
      const colour = discColourAt(discs, x, y);
      const at = (y * width + x) * 4;
      for (let channel = 0; channel < 3; channel++) {
        const gradient = (from[channel] ?? 0) * (1 - t) + (to[channel] ?? 0) * t;
        data[at + channel] = colour === undefined ? gradient : (colour[channel] ?? 0);
      }
      data[at + 3] = 255;
    }
  }
}

/**
 * Renders a PNG whose gradient and discs come from sha256(seed, prompt): the same picture request always
 * gives identical bytes, and different prompts give visibly different pictures.
 */
export function renderPromptPng(picture: PromptPicture): Uint8Array {
  const digest = createHash('sha256').update(`${picture.seed}\n${picture.prompt}`).digest();
  const png = new PNG({ width: picture.width, height: picture.height });
  paint(png, digest);
  // Level 1 keeps a 1024x1024 encode fast; the flat discs and smooth gradient still compress well.
  return new Uint8Array(PNG.sync.write(png, { deflateLevel: 1 }));
}
