/**
 * The full-size view: one <dialog> for every result image on the page. ← and → step through the images in page
 * order, Esc (the dialog's own cancel) or Close returns focus to the image that opened it.
 */
const dialog = () => document.getElementById('lightbox') as HTMLDialogElement;
const el = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let images: HTMLImageElement[] = [];
let index = 0;
let opener: HTMLElement | null = null;

function show(i: number): void {
  index = (i + images.length) % images.length;
  const img = images[index]!;
  const big = el<HTMLImageElement>('lightbox-image');
  big.src = img.src;
  big.alt = img.alt;
  const caption = img.closest('figure')?.querySelector('[data-testid="result-meta"]')?.textContent ?? '';
  el('lightbox-caption').textContent = `${index + 1} of ${images.length} · ${img.alt}${caption ? ` — ${caption}` : ''}`;
  const single = images.length < 2;
  el<HTMLButtonElement>('lightbox-prev').disabled = single;
  el<HTMLButtonElement>('lightbox-next').disabled = single;
}

/** Open the view on `img`, among all result images now on the page. */
export function openLightbox(img: HTMLImageElement): void {
  images = [...document.querySelectorAll<HTMLImageElement>('#results [data-testid="result-image"]')];
  const i = images.indexOf(img);
  if (i < 0) return;
  opener = img;
  show(i);
  if (!dialog().open) dialog().showModal();
  el('lightbox-close').focus();
}

export function initLightbox(): void {
  const d = dialog();
  el('lightbox-prev').addEventListener('click', () => show(index - 1));
  el('lightbox-next').addEventListener('click', () => show(index + 1));
  el('lightbox-close').addEventListener('click', () => d.close());
  d.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowLeft') show(index - 1);
    else if (e.key === 'ArrowRight') show(index + 1);
    else return;
    e.preventDefault();
  });
  // A click on the backdrop (outside the dialog's box) closes it.
  d.addEventListener('click', (e) => {
    const r = d.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) d.close();
  });
  d.addEventListener('close', () => {
    el<HTMLImageElement>('lightbox-image').removeAttribute('src');
    opener?.focus();
  });
}
