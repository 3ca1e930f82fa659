module t(input clk, input [7:0] a, input [7:0] b, output reg [15:0] y);
reg [7:0] ar, br; reg [15:0] p;
always @(posedge clk) begin ar <= a; br <= b; p <= ar*br; y <= y + p; end
endmodule
