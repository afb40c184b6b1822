// One logged image with its boxes and masks drawn over it, and the enlarged view.
import { useEffect, useRef, useState } from "preact/hooks";
import { boxesOf, classColor, type Descriptor } from "../../lib/media";

/** A mask PNG (one class id per pixel) drawn as translucent class colors; class 0 stays clear. */
function MaskLayer({ url, name }: { url: string; name: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const picture = new Image();
    let live = true;
    picture.onload = () => {
      const target = canvas.current;
      if (!live || !target) return;
      target.width = picture.naturalWidth;
      target.height = picture.naturalHeight;
      const context = target.getContext("2d");
      if (!context) return;
      context.drawImage(picture, 0, 0);
      const pixels = context.getImageData(0, 0, target.width, target.height);
      const data = pixels.data;
      for (let i = 0; i < data.length; i += 4) {
        const id = data[i] ?? 0;
        if (id === 0) {
          data[i + 3] = 0;
          continue;
        }
        const [r, g, b] = classColor(id);
        data[i] = r;
        data[i + 1] = g;
        data[i + 2] = b;
        data[i + 3] = 115;
      }
      context.putImageData(pixels, 0, 0);
      target.dataset.drawn = "true";
    };
    picture.src = url;
    return () => {
      live = false;
    };
  }, [url]);
  return <canvas ref={canvas} class="media-mask" data-mask={name} aria-hidden="true" />;
}

type BoxGroups = Record<string, { box_data?: unknown[]; class_labels?: Record<string, string>; url?: string }>;
const boxFiles = new Map<string, Promise<BoxGroups[string]>>();

/** The image's box groups with their boxes: inline (our SDK writes them into the descriptor) or read
 *  from their `boxes2D` file (the wandb client refers to the file only). */
function useBoxes(image: Descriptor, active: boolean): Descriptor {
  const groups = (image.boxes && typeof image.boxes === "object" ? image.boxes : {}) as BoxGroups;
  const missing = active ? Object.entries(groups).filter(([, g]) => !Array.isArray(g.box_data) && g.url) : [];
  const [loaded, setLoaded] = useState<BoxGroups>({});
  const signature = missing.map(([name, g]) => `${name}=${g.url}`).join("|");
  useEffect(() => {
    if (!missing.length) return undefined;
    let live = true;
    Promise.all(
      missing.map(([name, g]) => {
        const url = g.url as string;
        let found = boxFiles.get(url);
        if (!found) {
          found = fetch(url).then((r) => (r.ok ? (r.json() as Promise<BoxGroups[string]>) : {}));
          boxFiles.set(url, found);
        }
        return found.then((body) => [name, body] as const, () => [name, {}] as const);
      }),
    ).then((pairs) => live && setLoaded(Object.fromEntries(pairs)));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [signature]);
  if (!missing.length) return image;
  return { ...image, boxes: { ...groups, ...loaded } };
}

export function ImageView({ image, overlays = true, onOpen, large = false }: { image: Descriptor; overlays?: boolean; onOpen?: () => void; large?: boolean }) {
  const withBoxes = useBoxes(image, overlays);
  const boxes = overlays ? boxesOf(withBoxes) : [];
  const masks = overlays && image.masks && typeof image.masks === "object" ? Object.entries(image.masks as Record<string, Descriptor>) : [];
  const ratio = image.width && image.height ? `${image.width} / ${image.height}` : undefined;
  const body = (
    <span class={`media-image${large ? " large" : ""}`} style={ratio ? { aspectRatio: ratio } : undefined}>
      <img src={image.url} alt={image.caption ? String(image.caption) : "logged image"} loading="lazy" decoding="async" />
      {masks.map(([name, mask]) => (mask.url ? <MaskLayer key={name} url={mask.url} name={name} /> : null))}
      {boxes.map(({ group, rect }, i) => {
        const [r, g, b] = classColor(rect.classId);
        return (
          <span
            key={i}
            class="media-box"
            data-group={group}
            style={{ left: `${rect.x * 100}%`, top: `${rect.y * 100}%`, width: `${rect.w * 100}%`, height: `${rect.h * 100}%`, borderColor: `rgb(${r},${g},${b})` }}
          >
            {rect.label && <span class="media-box-label" style={{ background: `rgb(${r},${g},${b})` }}>{rect.label}</span>}
          </span>
        );
      })}
    </span>
  );
  if (!onOpen) return body;
  return (
    <button type="button" class="media-image-button" onClick={onOpen} title="Enlarge">
      {body}
    </button>
  );
}

/** The enlarged image over the page: Escape, the close button or a click outside closes it. */
export function Lightbox({ image, title, onClose }: { image: Descriptor; title: string; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
  }, []);
  return (
    <dialog
      ref={dialog}
      class="media-lightbox"
      aria-label={title}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
      onClick={(event) => {
        if (event.target === dialog.current) onClose();
      }}
    >
      <div class="media-lightbox-head">
        <span>{title}</span>
        <button type="button" class="btn" onClick={onClose} aria-label="Close">
          ✕
        </button>
      </div>
      <ImageView image={image} large />
      {image.caption && <p class="media-caption">{String(image.caption)}</p>}
    </dialog>
  );
}
