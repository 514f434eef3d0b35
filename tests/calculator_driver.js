// Twilio's segment calculator (npm sms-segments-calculator) behind a line protocol, for
// tests/test_segment_differential.py. Usage: node calculator_driver.js PACKAGE_DIR
// Each stdin line is JSON: [body, smart] -> [encoding, units per segment, sent text, graphemes];
// "map" -> the SmartEncodingMap entries in order; "gsm" -> the GSM-7 table's characters, by septets.
const readline = require('readline');
const path = require('path');

const pkg = process.argv[2];
const { SegmentedMessage } = require(pkg);
const smartMap = require(path.join(pkg, 'dist/libs/SmartEncodingMap.js')).default;
const unicodeToGsm = require(path.join(pkg, 'dist/libs/UnicodeToGSM.js')).default;

function answer(request) {
  if (request === 'map') {
    return Object.entries(smartMap);
  }
  if (request === 'gsm') {
    return Object.entries(unicodeToGsm).map(([code, septets]) => [String.fromCharCode(Number(code)), septets.length]);
  }
  const [body, smart] = request;
  const message = new SegmentedMessage(body, 'auto', smart);
  const bits = message.encodingName === 'GSM-7' ? 7 : 16;
  return [
    message.encodingName,
    message.segments.map((segment) => segment.messageSizeInBits() / bits),
    message.graphemes.join(''),
    message.graphemes,
  ];
}

readline.createInterface({ input: process.stdin, terminal: false }).on('line', (line) => {
  process.stdout.write(`${JSON.stringify(answer(JSON.parse(line)))}\n`);
});
