/// `GET /`: the live chat page, embedded (no external resources). Microphone through getUserMedia and an
/// AudioWorklet, PCM16 at 24 kHz over /v1/realtime; playback scheduled back to back on one AudioContext; server
/// VAD or push-to-talk; both transcripts; time to first audio per turn.
/// A `\#` at a line's end is a line continuation: the page is served with those lines unbroken.
enum LivePage {
    static let html = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>LFM2-Audio live chat</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body{font:15px system-ui,sans-serif;margin:0 auto;max-width:760px;padding:16px;color:#222}
        h1{font-size:20px} #log{border:1px solid #ccc;border-radius:6px;height:380px;overflow-y:auto;padding:8px}
        .user{color:#0b5394}.assistant{color:#38761d}.meta{color:#888;font-size:12px}
        button{font-size:15px;padding:6px 14px;margin-right:6px} #status{margin:8px 0}
        </style></head><body>
        <h1>LFM2-Audio live chat</h1>
        <div><button id="start">Start</button><button id="stop" disabled>Stop</button>
        <label><input type="checkbox" id="ptt"> push-to-talk</label> \#
        <button id="talk" disabled>Hold to talk</button></div>
        <div id="status">idle</div>
        <div id="log"></div>
        <div class="meta" id="ttfa"></div>
        <script>
        "use strict";
        const $ = id => document.getElementById(id);
        const RATE = 24000;
        let ws, ctx, node, stream, playTime = 0, sources = [], assistantEl = null, userEls = {}, turnSent = 0;
        let currentItem = null, itemStartTime = 0, talking = false;
        const log = (cls, text) => { const d = document.createElement("div"); d.className = cls; d.textContent = text;
          $("log").appendChild(d); $("log").scrollTop = 1e9; return d; };
        const worklet = `class Mic extends AudioWorkletProcessor { constructor(){super(); this.buf=[];}
         process(inputs){ const ch = inputs[0][0]; if (ch) { for (const v of ch) this.buf.push(v);
           if (this.buf.length >= 960) { this.port.postMessage(new Float32Array(this.buf)); this.buf = []; \#
        } } return true; } }
         registerProcessor("mic", Mic);`;
        function b64(bytes){ let s=""; for (let i=0;i<bytes.length;i+=0x8000) s+=String.fromCharCode.apply(null, \#
        bytes.subarray(i,i+0x8000)); return btoa(s); }
        function toPCM(f){ const o=new Int16Array(f.length); for(let i=0;i<f.length;i++){\#
        const v=Math.max(-1,Math.min(1,f[i])); o[i]=v<0?v*32768:v*32767;} return new Uint8Array(o.buffer); }
        function play(b64data){
          const bin = atob(b64data), n = bin.length >> 1, buf = ctx.createBuffer(1, n, RATE), \#
        ch = buf.getChannelData(0);
          for (let i = 0; i < n; i++) { let v = bin.charCodeAt(2*i) | (bin.charCodeAt(2*i+1) << 8); \#
        if (v >= 32768) v -= 65536; ch[i] = v / 32768; }
          const src = ctx.createBufferSource(); src.buffer = buf; src.connect(ctx.destination);
          const t = Math.max(playTime, ctx.currentTime + 0.03); if (!sources.length) itemStartTime = t;
          src.start(t); playTime = t + buf.duration; sources.push(src); src.onended = () => { \#
        sources = sources.filter(s => s !== src); };
        }
        function stopPlayback(){
          const played = currentItem ? Math.max(0, Math.round((ctx.currentTime - itemStartTime) * 1000)) : 0;
          for (const s of sources) { try { s.stop(); } catch (e) {} }
          sources = []; playTime = 0; return played;
        }
        function send(o){ if (ws && ws.readyState === 1) ws.send(JSON.stringify(o)); }
        function sessionUpdate(){
          send({type: "session.update", session: {type: "realtime", audio: {input: {format: {type: "audio/pcm", \#
        rate: RATE}, transcription: {model: "lfm2-audio"},
            turn_detection: $("ptt").checked ? null : {type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, \#
        silence_duration_ms: 500}}}}});
        }
        function onEvent(e){
          switch (e.type) {
          case "session.created": $("status").textContent = "connected: speak"; sessionUpdate(); break;
          case "input_audio_buffer.speech_started":
            $("status").textContent = "hearing you…";
            if (sources.length && currentItem) { const ms = stopPlayback();
              send({type: "conversation.item.truncate", item_id: currentItem, content_index: 0, audio_end_ms: ms}); }
            break;
          case "input_audio_buffer.speech_stopped": $("status").textContent = "thinking…"; break;
          case "conversation.item.input_audio_transcription.completed":
            if (userEls[e.item_id]) userEls[e.item_id].textContent = "you: " + e.transcript; break;
          case "conversation.item.created":
            if (e.item.role === "user") userEls[e.item.id] = log("user", "you: (speaking…)");
            else { currentItem = e.item.id; assistantEl = log("assistant", "assistant: "); }
            break;
          case "response.output_audio_transcript.delta": case "response.audio_transcript.delta":
            if (assistantEl) assistantEl.textContent += e.delta; break;
          case "response.output_audio.delta": case "response.audio.delta": play(e.delta); \#
        $("status").textContent = "speaking"; break;
          case "response.done": {
            const r = e.response, t = r.time_to_first_audio;
            $("ttfa").textContent = "last turn: " + r.status + \#
        (t != null ? ", time to first audio " + Math.round(t*1000) + " ms" : "");
            log("meta", "turn " + r.status + (t != null ? " · first audio " + Math.round(t*1000) + " ms" : ""));
            $("status").textContent = $("ptt").checked ? "hold to talk" : "listening"; break; }
          case "error": log("meta", "error: " + e.error.message); break;
          }
        }
        $("start").onclick = async () => {
          ctx = new AudioContext({sampleRate: RATE});
          stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true, \#
        noiseSuppression: true}});
          const url = URL.createObjectURL(new Blob([worklet], {type: "application/javascript"}));
          await ctx.audioWorklet.addModule(url);
          const srcNode = ctx.createMediaStreamSource(stream);
          node = new AudioWorkletNode(ctx, "mic");
          node.port.onmessage = ev => { if (!$("ptt").checked || talking) send({type: "input_audio_buffer.append", \#
        audio: b64(toPCM(ev.data))}); };
          srcNode.connect(node);
          ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/realtime");
          ws.onmessage = m => onEvent(JSON.parse(m.data));
          ws.onclose = () => { $("status").textContent = "disconnected"; };
          $("start").disabled = true; $("stop").disabled = false; $("talk").disabled = false;
        };
        $("stop").onclick = () => { if (ws) ws.close(); if (stream) stream.getTracks().forEach(t => t.stop()); \#
        if (ctx) ctx.close();
          $("start").disabled = false; $("stop").disabled = true; $("talk").disabled = true; };
        $("ptt").onchange = sessionUpdate;
        $("talk").onmousedown = () => { talking = true; if (sources.length) { stopPlayback(); \#
        send({type: "response.cancel"}); } };
        $("talk").onmouseup = () => { talking = false; send({type: "input_audio_buffer.commit"}); \#
        send({type: "response.create"}); };
        </script></body></html>
        """#
}
