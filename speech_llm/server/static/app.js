// The speech-llm browser client: microphone -> AudioWorklet -> WebSocket (protocol v1, see
// docs/SERVER_PROTOCOL.md) -> committed text and the partial word, live, segment by segment.
//
// URL parameters (all optional):
//   autostart=1     start at once (no click; for kiosks and tests)
//   format=f32le    send float32 instead of int16 (s16le, the default: round(x * 32767))
//   seconds=S       send exactly S seconds of audio, then "end"
//   sync_ms=M       begin sending at the first non-zero sample after at least M ms of exact digital
//                   silence (lets a test line its audio up with a looping fake-microphone file)
//   token=T         the server's shared token
//   ws=URL          another WebSocket endpoint (default: this page's host, path /ws)
// When the server says "done", #final-text holds the text of all segments and body[data-state] is "done".
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  const opt = {
    autostart: params.get('autostart') === '1',
    format: params.get('format') || 's16le',
    seconds: params.has('seconds') ? parseFloat(params.get('seconds')) : null,
    syncMs: params.has('sync_ms') ? parseFloat(params.get('sync_ms')) : null,
    token: params.get('token'),
    ws: params.get('ws') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
  };
  const $ = (id) => document.getElementById(id);
  const button = $('toggle');
  let session = null;

  function setStatus(state, text) {
    $('status').dataset.state = state;
    $('status').textContent = text || state;
    document.body.dataset.state = state;
  }

  function fmtTime(t) {
    const m = Math.floor(t / 60);
    return `${String(m).padStart(2, '0')}:${(t - 60 * m).toFixed(1).padStart(4, '0')}`;
  }

  // Samples as the protocol's little-endian frames (typed arrays are little-endian on every platform
  // browsers run on).
  function encode(x) {
    if (opt.format === 'f32le') return new Float32Array(x);
    const out = new Int16Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = Math.round(Math.max(-1, Math.min(1, x[i])) * 32767);
    return out;
  }

  class Session {
    constructor() {
      this.finals = [];
      this.sent = 0;
      this.zeros = 0;
      this.ended = false;
      this.done = false;
    }

    async start() {
      setStatus('connecting', 'opening the microphone');
      this.media = await navigator.mediaDevices.getUserMedia(
        {audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
      const rate = this.media.getAudioTracks()[0].getSettings().sampleRate;
      // The capture rate, so that the browser does not resample (the server does, to 16 kHz).
      this.ctx = rate ? new AudioContext({sampleRate: rate}) : new AudioContext();
      this.rate = this.ctx.sampleRate;
      this.limit = opt.seconds == null ? Infinity : Math.round(opt.seconds * this.rate);
      this.syncLen = opt.syncMs == null ? 0 : Math.round(opt.syncMs * this.rate / 1000);
      this.gateOpen = this.syncLen === 0;
      await this.ctx.audioWorklet.addModule('/static/capture-worklet.js');
      setStatus('connecting', `connecting to ${opt.ws}`);
      this.ws = new WebSocket(opt.ws);
      this.ws.binaryType = 'arraybuffer';
      await new Promise((resolve, reject) => {
        this.ws.onopen = resolve;
        this.ws.onerror = () => reject(new Error(`cannot connect to ${opt.ws}`));
      });
      this.ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
      this.ws.onclose = (e) => this.onClose(e);
      const start = {type: 'start', version: 1, sample_rate: this.rate, format: opt.format, channels: 1,
                     label: 'browser'};
      if (opt.token) start.token = opt.token;
      this.ws.send(JSON.stringify(start));
      this.source = this.ctx.createMediaStreamSource(this.media);
      this.node = new AudioWorkletNode(this.ctx, 'capture');
      this.node.port.onmessage = (e) => this.onAudio(e.data);
      this.source.connect(this.node);
      await this.ctx.resume();
      document.body.dataset.sampleRate = this.rate;
      setStatus('listening', `listening at ${this.rate} Hz` + (this.gateOpen ? '' : ' (waiting for the sync point)'));
    }

    onAudio(block) {
      if (this.ended) return;
      let from = 0;
      if (!this.gateOpen) {
        from = -1;
        for (let i = 0; i < block.length; i++) {
          if (block[i] === 0) {
            this.zeros++;
          } else if (this.zeros >= this.syncLen) {
            from = i;
            this.gateOpen = true;
            setStatus('listening', `listening at ${this.rate} Hz`);
            break;
          } else {
            this.zeros = 0;
          }
        }
        if (from < 0) return;
      }
      let x = block.subarray(from);
      if (this.sent + x.length > this.limit) x = x.subarray(0, this.limit - this.sent);
      if (x.length && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(encode(x));
        this.sent += x.length;
        document.body.dataset.sentSamples = this.sent;
      }
      if (this.sent >= this.limit) this.stop();
    }

    stop() {
      if (this.ended) return;
      this.ended = true;
      this.release();
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({type: 'end'}));
        setStatus('finishing', 'finishing the last segment');
      }
    }

    release() {
      if (this.node) this.node.disconnect();
      if (this.source) this.source.disconnect();
      if (this.media) this.media.getTracks().forEach((t) => t.stop());
      if (this.ctx && this.ctx.state !== 'closed') this.ctx.close();
    }

    onMessage(m) {
      if (m.type === 'ready') {
        $('info').textContent = `session ${m.session}, chunk ${m.chunk_s} s, protocol v${m.version}`;
      } else if (m.type === 'partial') {
        $('open').classList.add('active');
        $('open').querySelector('.time').textContent = `[${fmtTime(m.start_s)} -      ]`;
        $('committed').textContent = m.committed;
        $('partial').textContent = m.partial ? ` ${m.partial}` : '';
      } else if (m.type === 'final') {
        this.finals.push(m.text);
        if (m.text) {
          const div = document.createElement('div');
          div.className = 'segment' + (m.truncated ? ' truncated' : '');
          div.dataset.segment = m.segment;
          const time = document.createElement('span');
          time.className = 'time';
          time.textContent = `[${fmtTime(m.start_s)} - ${fmtTime(m.end_s)}]`;
          div.append(time, document.createTextNode(m.text));
          $('segments').append(div);
        }
        $('open').classList.remove('active');
        $('open').querySelector('.time').textContent = '';
        $('committed').textContent = '';
        $('partial').textContent = '';
      } else if (m.type === 'done') {
        this.done = true;
        $('final-text').textContent = this.finals.filter((t) => t).join(' ');
        setStatus('done', `done: ${m.segments} segment(s), ${m.audio_s} s of audio, server RTF ${m.rtf}`);
      } else if (m.type === 'error') {
        this.error = m;
        setStatus('error', `error ${m.code}: ${m.message}`);
      }
    }

    onClose(e) {
      this.ended = true;
      this.release();
      if (!this.done && !this.error) setStatus('error', `connection closed (${e.code}${e.reason ? ' ' + e.reason : ''})`);
      button.textContent = 'Start';
      button.classList.remove('stop');
      session = null;
    }
  }

  async function begin() {
    session = new Session();
    button.textContent = 'Stop';
    button.classList.add('stop');
    $('segments').replaceChildren();
    try {
      await session.start();
    } catch (err) {
      setStatus('error', `error: ${err.message || err}`);
      if (session) session.release();
      session = null;
      button.textContent = 'Start';
      button.classList.remove('stop');
    }
  }

  button.addEventListener('click', () => (session ? session.stop() : begin()));
  if (opt.autostart) begin();
})();
