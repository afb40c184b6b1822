// A run's colour: preset swatches or any custom colour.
import { useEffect, useRef, useState } from "preact/hooks";
import { PALETTE } from "../lib/colors";

export function ColorPicker({ color, label, onChange }: { color: string; label: string; onChange: (hex: string) => void }) {
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  const popup = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return undefined;
    popup.current?.querySelector<HTMLButtonElement>("button")?.focus();
    const onDown = (event: MouseEvent) => {
      const target = event.target as Node;
      if (!popup.current?.contains(target) && !button.current?.contains(target)) setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    return () => document.removeEventListener("mousedown", onDown);
  }, [open]);
  const choose = (hex: string) => {
    onChange(hex);
    setOpen(false);
    button.current?.focus();
  };
  return (
    <div class="menu-wrap">
      <button
        ref={button}
        type="button"
        class="swatch-button"
        style={{ background: color }}
        aria-label={`Colour of ${label}`}
        title="Change colour"
        aria-haspopup="dialog"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
      />
      {open && (
        <div
          ref={popup}
          class="menu menu-left color-popup"
          role="dialog"
          aria-label={`Choose a colour for ${label}`}
          onKeyDown={(event) => {
            if (event.key === "Escape") {
              setOpen(false);
              button.current?.focus();
            }
          }}
        >
          <div class="swatches">
            {PALETTE.map((hex) => (
              <button key={hex} type="button" class="swatch-choice" style={{ background: hex }} aria-label={`Colour ${hex}`} aria-pressed={hex === color} onClick={() => choose(hex)} />
            ))}
          </div>
          <label class="control">
            <span>Custom</span>
            <input type="color" value={color} onChange={(event) => choose((event.target as HTMLInputElement).value)} />
          </label>
        </div>
      )}
    </div>
  );
}
