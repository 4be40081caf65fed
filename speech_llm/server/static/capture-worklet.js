// AudioWorklet processor of the speech-llm page: hands the captured audio to the page in blocks.
// Channels are averaged to mono; blocks of BLOCK frames (about 46 ms at 44.1 kHz) are posted as
// Float32Array copies, so the main thread gets ~20 messages a second instead of one per 128-frame quantum.
const BLOCK = 2048;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(BLOCK);
    this.fill = 0;
  }

  process(inputs) {
    const chans = inputs[0];
    if (!chans || chans.length === 0) return true;
    const n = chans[0].length;
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let c = 0; c < chans.length; c++) v += chans[c][i];
      this.buf[this.fill++] = v / chans.length;
      if (this.fill === BLOCK) {
        this.port.postMessage(this.buf);
        this.buf = new Float32Array(BLOCK);
        this.fill = 0;
      }
    }
    return true;
  }
}

registerProcessor('capture', CaptureProcessor);
