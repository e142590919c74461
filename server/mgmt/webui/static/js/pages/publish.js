// Publishing a message through POST /api/exchanges/{vhost}/{exchange}/publish, shared by the
// exchanges list and the queue page (which publishes through the default exchange).
import { parseJSON } from '../ui.js';

export const publishFields = (routingKey) => [
  { name: 'routing_key', label: 'Routing key', value: routingKey ?? '' },
  { name: 'delivery_mode', label: 'Delivery mode', type: 'select', value: '2', options: [['1', '1 - non-persistent'], ['2', '2 - persistent']] },
  { name: 'headers', label: 'Headers (JSON object)', type: 'textarea', placeholder: '{"x-example": "value"}' },
  { name: 'properties', label: 'Other properties (JSON object)', type: 'textarea', placeholder: '{"content_type": "application/json", "message_id": "1"}' },
  { name: 'payload', label: 'Payload', type: 'textarea', id: 'f-payload' },
  { name: 'payload_encoding', label: 'Payload encoding', type: 'select', value: 'string', options: [['string', 'string'], ['base64', 'base64']] },
];

// publish sends the form's message; resolves to whether it was routed to a queue.
export async function publish(api, vhost, exchange, v) {
  const properties = parseJSON(v.properties, 'Properties');
  const headers = parseJSON(v.headers, 'Headers');
  if (Object.keys(headers).length) properties.headers = headers;
  properties.delivery_mode = Number(v.delivery_mode);
  const name = exchange === '' ? 'amq.default' : exchange;
  const res = await api.post(`/exchanges/${api.seg(vhost)}/${api.seg(name)}/publish`, {
    properties, routing_key: v.routing_key, payload: v.payload, payload_encoding: v.payload_encoding,
  });
  return !!(res && res.routed);
}
